"""Operations on image batches (N, L, L): in-plane rotation, Fourier resizing and windowing, CTF, formation
filters, shifts and noise (DESIGN §2 conventions)."""
