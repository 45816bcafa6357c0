"""Private instances of real servers, started on loopback for the tests."""
