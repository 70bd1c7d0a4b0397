"""Foundations every layer uses: typed configuration, data files, cache folders, stop signals."""
