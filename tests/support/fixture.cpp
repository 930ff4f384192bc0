// placeholder: filled in by the owner of tests/support
