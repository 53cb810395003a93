"""What scores a point: SSLMem's scorer, probes, quantization, Déjà vu, reliability and agreement
statistics.

May import: ``sslmem.train`` and the base modules.
"""
