"""Config files: the original's dict-literal format parsed without running code, the typed schemas
(MOReL, real-env NPG), shared command-line flags."""
