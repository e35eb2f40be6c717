"""Building blocks shared by the model families: outputs, base class, layers, caches."""
