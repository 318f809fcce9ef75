"""Network building blocks with functional parameters; no training and no bitstream code."""
