"""The operational readiness review (ORR): its checklist ids and the tests that prove them."""
