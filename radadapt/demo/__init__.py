"""The synthetic hospital (`radadapt demo-archive`, docs/demo_archive.md) and, later, the `radadapt demo` pipeline.

Generator modules, in the order data flows:

- ``truth``: finding and device names (the label columns), prevalences, per-study records;
- ``cohort``: the plan (patients, studies, images, special cases) drawn from one seed;
- ``phi``: fake identities and the registry of every planted PHI string (phi.json);
- ``canvas``, ``phantom``, ``devices``, ``bodyparts``: display-space images and device masks;
- ``pixelmodule``: stored values and Image Pixel / LUT tags (MONOCHROME1, LUTs, windows, bit depths);
- ``dicomgen``, ``instance``, ``transfer``: headers with PHI, one planned image made real, transfer syntaxes;
- ``mess``, ``junk``: what else a real export holds (other objects, broken files, non-DICOM, duplicates);
- ``phrases``, ``reports``: report text and gold labels;
- ``archive``: ``generate_archive`` writes it all, with ground truth.

Nothing here is imported by ``radadapt.cli`` at start-up; heavy libraries load inside functions.
"""
