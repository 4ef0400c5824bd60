"""Engines: TensorRT through Polygraphy (full TensorRT or TensorRT-RTX, whichever is installed).

Imported only by the commands that build engines; diagnose and fix never load TensorRT.
"""
