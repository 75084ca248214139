"""The aconnect HTTP service: upload a model, data and a spec; follow the job; download results."""
