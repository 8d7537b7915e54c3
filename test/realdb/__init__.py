"""Tests against real drivers and servers (marker ``realdb``)."""
