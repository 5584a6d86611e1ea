//! `rg-tokenize`: character and byte-level BPE tokenizers. Stands alone (no tensors).
