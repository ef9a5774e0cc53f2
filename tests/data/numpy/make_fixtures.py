"""Writes the NumPy fixtures of tests/test_numpy_io.cpp (run from this folder: python3 make_fixtures.py).

The values are small formulas the tests recompute; the files are what np.save / np.savez write.
"""
import numpy as np

f4 = np.arange(6, dtype="<f4").reshape(2, 3) * 0.5 - 1  # -1, -0.5, 0, 0.5, 1, 1.5
np.save("f4_2x3.npy", f4)
np.save("f8_5.npy", np.array([0.1, -2.5, 1e300, np.pi, -0.0], dtype="<f8"))
np.save("i4_3x2.npy", np.arange(6, dtype="<i4").reshape(3, 2) - 3)
np.save("i8_4.npy", np.array([-(2**40), -1, 0, 2**62], dtype="<i8"))
np.save("u1_2x2x2.npy", (np.arange(8, dtype="u1") * 30).reshape(2, 2, 2))
np.save("b1_5.npy", np.array([True, False, True, True, False]))
np.save("scalar_f4.npy", np.array(3.25, dtype="<f4"))
np.save("empty_0x3_f4.npy", np.zeros((0, 3), dtype="<f4"))
# Column-major files: the header says fortran_order True and the bytes are in that order.
np.save("fortran_i4_2x3x4.npy", np.asfortranarray(np.arange(24, dtype="<i4").reshape(2, 3, 4)))
np.save("fortran_f8_3x2.npy", np.asfortranarray(np.arange(6, dtype="<f8").reshape(3, 2) / 8))
for version in ((2, 0), (3, 0)):
    with open(f"v{version[0]}_f4_2x3.npy", "wb") as f:
        np.lib.format.write_array(f, f4, version=version)
# dtypes kiln refuses
np.save("big_endian_f4.npy", np.arange(3, dtype=">f4"))
np.save("complex_c8.npy", np.zeros(2, dtype="<c8"))
np.save("unicode_U3.npy", np.array(["abc", "de"]))
np.save("object_O.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
np.save("structured.npy", np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]))
# archives: savez stores the members, savez_compressed deflates them
arrays = dict(x=f4, y=np.array([0, 1, 2], dtype="<i4"), z=np.array(2.5))
np.savez("arrays.npz", **arrays)
np.savez_compressed("arrays_compressed.npz", **arrays)
# a numeric CSV as np.savetxt writes it
np.savetxt("houses.csv", np.array([[1, 5.0], [2, 6.5], [3, 8.0]]), delimiter=",", header="bedrooms,price",
           comments="", fmt="%g")
# archives np.savez would not write: two members of one name, and a member that is not an array
import io
import warnings
import zipfile

member = io.BytesIO()
np.save(member, np.arange(2, dtype="<i4"))
with zipfile.ZipFile("duplicate.npz", "w") as z, warnings.catch_warnings():
    warnings.simplefilter("ignore")  # zipfile warns about the duplicate name, which is the point
    z.writestr("a.npy", member.getvalue())
    z.writestr("a.npy", member.getvalue())
with zipfile.ZipFile("not_an_array.npz", "w") as z:
    z.writestr("x.npy", member.getvalue())
    z.writestr("readme.txt", "not an array")
