"""One fuzz example as Hypothesis draws it: a nanoBragg argv, the input files it reads, a pixel.

The argv is a small base (cell, N, F, λ, distance, a detector of at most 128² pixels, no noise
or PGM output) followed by a list of flags drawn from the selected families of the option
table. Hypothesis shrinks that list towards empty and each value towards its first edge, so a
minimal example keeps only the flags a divergence needs. One example in four (where the
'outputs' family is drawn) also asks for output files (-intfile, -pgmfile, -noisefile), kept
apart from the argv (a case's argv names no output file) and compared byte for byte.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from hypothesis import strategies as st

from harness.service.fuzz import grammar, inputs, values
from harness.service.record import SIDE_OUTPUT_FLAGS

#: Largest detector side drawn by default (throughput: issue 14 asks for <= 128²).
MAX_PIXELS = 128


@dataclass(frozen=True)
class Example:
    argv: tuple[str, ...]
    files: dict[str, bytes] = field(default_factory=dict)
    pixel: tuple[int, int] = (0, 0)
    outputs: tuple[str, ...] = ()  # output flags (-intfile, -pgmfile, -noisefile) whose files are compared

    def families(self) -> list[str]:
        """The flag families this example touches (a minimal case's tags)."""
        by_name = {f.name: f.family for f in grammar.flags()}
        touched = {by_name[t] for t in self.argv if t in by_name and t not in BASE_FLAGS}
        return sorted(touched | ({"outputs"} if self.outputs else set()))


BASE_FLAGS = frozenset({"-cell", "-N", "-default_F", "-lambda", "-distance", "-pixel", "-detpixels",
                        "-nonoise", "-nopgm", "-noprogress"})


@st.composite
def _cell(draw: st.DrawFn) -> list[str]:
    edges = st.sampled_from((100, 50, 20, 300))
    angles = st.sampled_from((90, 60, 120, 100))
    a, b, c = draw(edges), draw(edges), draw(edges)
    al, be, ga = (draw(angles) for _ in range(3)) if draw(st.booleans()) else (90, 90, 90)
    return ["-cell", *map(str, (a, b, c, al, be, ga))]


@st.composite
def examples(draw: st.DrawFn, families: Optional[Sequence[str]] = None, max_pixels: int = MAX_PIXELS,
             max_flags: int = 4) -> Example:
    """An Example over the given flag families (all when None)."""
    n = draw(st.one_of(st.sampled_from([p for p in (16, 1, 2, 3, 8, 32, 64, 128) if p <= max_pixels]),
                       st.integers(1, max_pixels)))
    size = (n, n)
    argv = [*draw(_cell()), "-N", draw(st.sampled_from(("3", "1", "2", "5"))), "-default_F", "100",
            "-lambda", "1", "-distance", "100", "-pixel", "0.1", "-detpixels", str(n),
            "-nonoise", "-nopgm", "-noprogress"]
    pool = [f for fams in grammar.flags_by_family(set(families) if families else None).values() for f in fams]
    files: dict[str, bytes] = {}
    if pool:
        # Not unique_by: Hypothesis shrinks unique sampled lists poorly (flags stayed in minimal cases).
        for flag in draw(st.lists(st.sampled_from(pool), max_size=max_flags)):
            if flag.kind == "file":
                name = inputs.FILE_NAMES[flag.name]
                files[name] = draw(inputs.file_for(flag.name, size))
                argv += [flag.name, name]
            else:
                argv += [flag.name, *draw(values.values(flag, size))]
    pixel = (draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1)))
    outputs: tuple[str, ...] = ()
    # Shrinks towards False: a minimal case keeps output files only when they are what diverges.
    if (families is None or "outputs" in families) and draw(st.sampled_from((False, False, False, True))):
        outputs = tuple(draw(st.lists(st.sampled_from(tuple(SIDE_OUTPUT_FLAGS)), min_size=1, max_size=3,
                                      unique=True)))
        if "-noisefile" in outputs and "-seed" not in argv:
            argv += ["-seed", "1"]  # the C seeds its noise from the clock otherwise
    return Example(tuple(argv), files, pixel, outputs)
