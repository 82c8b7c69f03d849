"""In-memory fakes of the service's collaborators, for tests without servers."""
