"""The local environment (`make up`): the verifier, the dev IdP, Prometheus and Alertmanager on
127.0.0.1 under supervisord, with the same service, config, rules and runbooks as prod."""
