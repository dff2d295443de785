"""News-outlet crawler: sections to clean articles, across mirror domains."""
