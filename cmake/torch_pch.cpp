// Compiles the shared precompiled header <torch/torch.h> once for every target.
