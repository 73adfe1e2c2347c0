"""Lowerings of the netlang IR to executable code (torch modules, triton kernels).

These import torch or triton; netlang itself never does.
"""
