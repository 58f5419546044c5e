"""The central logging stack: Grafana Loki (:mod:`.loki`), Grafana Alloy collecting every pod's
lines into it (:mod:`.alloy`), and Argo CD's deployment records pushed to it
(:mod:`.notifications`). Every fact about retention, labels and queries comes from
:mod:`cap_ops.log_store`."""
