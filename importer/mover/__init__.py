"""The data mover's core: copy a source to a destination range by range. No Django here."""
