"""Development kit shared by the tests and the benchmarks: loopback ports, a throwaway PKI, a
JWKS server, signed tokens, and the verifier as a real process. Never used in production."""
