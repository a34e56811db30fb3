"""Stateless, differentiable ops: the fast core that dastc's modules call.

Every function here takes and returns tensors, works on images (rank 4) and
clips (rank 5), runs on the device and dtype of its inputs, and compiles with
``torch.compile(fullgraph=True)``.
"""

# --- imports (one block per module; keep sorted by module) ---

__all__: list[str] = []
