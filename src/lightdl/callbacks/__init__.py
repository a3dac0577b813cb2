"""Lightning callbacks written for lightdl (the rest come from Lightning itself)."""
