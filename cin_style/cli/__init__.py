"""Command-line tools; the only modules of cin_style that parse flags."""
