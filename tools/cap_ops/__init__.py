"""Operations tooling of the repository: the local environment (`make up`) and smoke checks."""
