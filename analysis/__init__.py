"""Logged runs -> pandas -> paper-style tables (Markdown, LaTeX, CSV) and seaborn figures."""
