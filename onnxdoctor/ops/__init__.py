"""Op knowledge as data: precision facts, TensorRT support per target, each fact with its source."""
