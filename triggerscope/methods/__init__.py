"""Trigger reconstruction methods: one interface, one result type (`MethodResult`)."""
