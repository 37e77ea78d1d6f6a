"""DNA encoders (LOLBERT, DNABERT, Nucleotide Transformer, k-mer spectrum) and pooling."""

from biotalk.models.encoders import DNAEncoder, load_dna_encoder
from biotalk.models.pooling import POOLINGS, pool

__all__ = ["DNAEncoder", "POOLINGS", "load_dna_encoder", "pool"]
