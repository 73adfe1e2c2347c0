"""The Triton backend: fused GPU kernels generated from the fused IR (issue 11, in progress).

conv.py holds the first kernel family, an implicit-GEMM convolution over NHWC activations with the
fused epilogue (folded-batchnorm bias, scale, residual add, activation) and stores into a channel
slice of a wider buffer (concat in place). The plan, the launch sequence and the standalone file
come next; `--backend triton` is not offered until they exist.
"""
