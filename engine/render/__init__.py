"""Rendering: a resolved ``SimulationSetup`` → the float image the C writes.

Per pixel the C loops over thickness layers, sub-pixels, sources, φ steps and mosaic domains and
sums F_cell²·F_latt², then scales once by r_e²·fluence/steps and by the cached capture fraction,
polarization and solid angle. The work is split by job:

* ``engine.render.pixel_physics``: pure per-pixel physics (positions, ω, absorption, polarization);
* ``engine.render.eval_order``: the C's evaluation order (φ rotation plan, thread blocks, ROI/mask);
* ``engine.render.carry_state``: what a pixel inherits from earlier evaluations in c-parity (thread-first
  pixels for ``phi0-stale-rotation``, the interpolation stop), found without rendering;
* ``engine.render.plan``: what every batch shares (orientations, sources, F table: ``f_table``);
* ``engine.render.terms``: per-term physics of a batch (layer geometry, hkl, F_latt, F_cell, sums);
* ``engine.render.kernel``: one batch of pixels, all terms, the final scaling;
* ``engine.render.chunking``: batch size from the memory budget, and the refusal of a run that
  cannot fit at all;
* ``engine.outputs.pixel_trace``: the traced pixel's TRACE_PY lines;
* ``engine.render.frame``: ``render``, the whole detector;
* ``engine.render.trace_only``: ``render_trace_only``, the traced pixel alone.

Three things depend on the C's evaluation order, and c-parity reproduces each as a fixed
function of that order (``engine.config.defects``):

* ``phi0-stale-rotation``: a φ step equal to 0 reuses the last rotation the thread computed.
  Every sweep over φ is the same list of angles, so the rotation a zero step sees is fixed, except
  in the first sweep of each thread, which still holds the unrotated cell.
* ``oversample-running-sum``: with an ``-oversample_*`` flag the C multiplies the running sum by
  the factor after each term; the closed form is I_bg·Πm + Σ x_t·Π_{s≥t} m_s.
* Interpolation is one run-wide switch, turned off for good by the first evaluation whose
  tricubic stencil leaves the grid.

Threads: the render uses as many CPU threads as torch is set to (``torch.set_num_threads`` /
OMP_NUM_THREADS), one batch of rows per thread (``engine.render.chunking.map_batches``); the C's
thread count that c-parity reproduces is ``setup.c_threads`` and is unrelated.
"""
