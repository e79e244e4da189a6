"""Deploy: what leaves the workstation for a device.

- `archive`: the package container (a canonical tar, optionally zstd-compressed) and its strict reader;
- `manifest`: the manifest schema, the base model's fingerprint, Ed25519 keys and signatures;
- `build`: package an update folder (fp32 | bf16 | int8), verify a package, extract it;
- `device`: a device folder with atomic apply, status, rollback and generation;
- `run_packages`: packages from a finished run (`package export`, `package sizes`);
- `gguf`: a merged model as a GGUF file for llama.cpp (`export gguf`);
- `edge`: does each deployed model fit an edge profile (`edge-check`).
"""
