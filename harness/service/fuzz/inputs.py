"""Input files made on the fly: HKL, -mat, -sourcefile, SMV -img and -mask.

Each strategy draws the file's bytes; the example writes them into its own data root. Shapes
that stress the C's readers are in the mix: negative and missing Miller indices, blank and
``#`` lines and short rows in source files, SMV headers with extra geometry keys.
"""
from __future__ import annotations

from hypothesis import strategies as st

from harness.service.fuzz.values import fmt

#: File name the example gives each file flag's input (relative to the example's data root).
FILE_NAMES = {"-hkl": "fuzz.hkl", "-mat": "fuzz.mat", "-sourcefile": "fuzz.sources", "-img": "fuzz_img.smv",
              "-mask": "fuzz_mask.smv"}


@st.composite
def hkl_file(draw: st.DrawFn) -> bytes:
    """Miller indices (negative ones included; absent ones are simply missing) and amplitudes."""
    idx = st.integers(-3, 3)
    rows = draw(st.lists(st.tuples(idx, idx, idx, st.sampled_from((100.0, 0.0, 1.0, 1234.5))), min_size=1,
                         max_size=12, unique_by=lambda r: r[:3]))
    return "".join(f"{h} {k} {l} {fmt(f)}\n" for h, k, l, f in rows).encode()


@st.composite
def mat_file(draw: st.DrawFn, wavelength_a: float = 1.0) -> bytes:
    """A MOSFLM orientation matrix: a*, b*, c* (times λ) as columns, an axis permutation of a cell."""
    a, b, c = (draw(st.sampled_from((100.0, 50.0, 70.0, 200.0))) for _ in range(3))
    order = draw(st.permutations((0, 1, 2)))
    sign = draw(st.sampled_from((1.0, -1.0)))
    rows = [[0.0] * 3 for _ in range(3)]
    for col, (axis, length) in enumerate(zip(order, (a, b, c))):
        rows[axis][col] = (sign if col == 2 else 1.0) * wavelength_a / length
    return "".join(" ".join(f"{v:.10f}" for v in row) + "\n" for row in rows).encode()


@st.composite
def source_file(draw: st.DrawFn) -> bytes:
    """Source rows 'X Y Z weight λ(m)', with blank and '#' lines and rows missing trailing columns."""
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(("row", "row", "blank", "comment", "short")))
        if kind == "blank":
            lines.append("")
        elif kind == "comment":
            lines.append("# a comment")
        else:
            x = draw(st.sampled_from((-10.0, -1.0, -10.0)))
            y, z = (draw(st.sampled_from((0.0, 0.01, -0.01, 0.1))) for _ in range(2))
            w = draw(st.sampled_from((1.0, 0.5, 0.0, 2.0)))
            lam = draw(st.sampled_from((1e-10, 1.1e-10, 0.9e-10)))
            cols = [fmt(x), fmt(y), fmt(z), fmt(w), f"{lam:.3e}"]
            lines.append(" ".join(cols[:3] if kind == "short" else cols))
    if not any(line and not line.startswith("#") for line in lines):
        lines.append("-10 0 0 1 1e-10")
    return ("\n".join(lines) + "\n").encode()


def smv_bytes(size: tuple[int, int], header: dict[str, str], pixels: list[int]) -> bytes:
    """An SMV file as nanoBragg reads it: a 512-byte text header, then uint16 pixels, fast first."""
    fields = {"HEADER_BYTES": "512", "DIM": "2", "BYTE_ORDER": "little_endian", "TYPE": "unsigned_short",
              "SIZE1": str(size[0]), "SIZE2": str(size[1]), **header}
    text = "{\n" + "".join(f"{k}={v};\n" for k, v in fields.items()) + "}\n"
    head = text.encode().ljust(512, b"\0")
    body = b"".join(int(p).to_bytes(2, "little") for p in pixels)
    return head + body


@st.composite
def smv_file(draw: st.DrawFn, size: tuple[int, int], mask: bool) -> bytes:
    """An -img or -mask file of the example's detector size, with some geometry keys in its header."""
    keys = draw(st.lists(st.sampled_from(("PIXEL_SIZE", "DISTANCE", "BEAM_CENTER_X", "BEAM_CENTER_Y",
                                          "WAVELENGTH", "PHI", "OSC_RANGE", "TWOTHETA", "CLOSE_DISTANCE")),
                         max_size=4, unique=True))
    values = {"PIXEL_SIZE": "0.1", "DISTANCE": "100", "BEAM_CENTER_X": fmt(size[0] * 0.05),
              "BEAM_CENTER_Y": fmt(size[1] * 0.05), "WAVELENGTH": "1", "PHI": "0", "OSC_RANGE": "0",
              "TWOTHETA": "0", "CLOSE_DISTANCE": "100"}
    header = {k: draw(st.sampled_from((values[k], "50", "0.5"))) for k in keys}
    n = size[0] * size[1]
    if mask:
        zeros = set(draw(st.lists(st.integers(0, n - 1), max_size=min(n, 8))))
        pixels = [0 if i in zeros else 1 for i in range(n)]
    else:
        pixels = [draw(st.sampled_from((0, 1, 100)))] * n
    return smv_bytes(size, header, pixels)


def file_for(flag: str, size: tuple[int, int]) -> st.SearchStrategy[bytes]:
    """The strategy that makes the input file ``flag`` reads."""
    return {"-hkl": lambda: hkl_file(), "-mat": lambda: mat_file(), "-sourcefile": lambda: source_file(),
            "-img": lambda: smv_file(size, mask=False), "-mask": lambda: smv_file(size, mask=True)}[flag]()
