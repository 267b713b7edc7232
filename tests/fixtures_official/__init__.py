"""Tiny datasets and model assets written in their OFFICIAL on-disk layouts (for CPU rehearsals of the small
and paper code paths). One module per dataset or asset family; each writes under a directory the test gives
(tmp_path) and returns the --data-root to pass. Contents are synthetic; names, folders and file formats follow
the official releases (sources in each module's docstring)."""
