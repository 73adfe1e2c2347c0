"""The Triton backend: fused GPU kernels generated from the fused IR (issue 11, in progress).

Built so far, each tested against torch (through Triton's interpreter without a GPU):

- conv.py: an implicit-GEMM convolution over NHWC activations with the fused epilogue
  (folded-batchnorm bias, scale, residual add, activation) and stores into a channel slice of a
  wider buffer (concat in place);
- pool.py: max and average pooling over NHWC, with PyTorch's ceil mode and count_include_pad.

The kernel plan, the launch sequence and the standalone file come next; `--backend triton` is
not offered until they exist.
"""
