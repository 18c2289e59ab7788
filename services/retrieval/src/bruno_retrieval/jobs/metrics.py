"""Job progress on retrieval's ``/metrics``: jobs by kind and state, documents, chunks and
retries."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

JOBS = Gauge("bruno_retrieval_jobs", "Jobs kept, by kind and state.", ["kind", "state"])
JOB_DOCUMENTS = Counter(
    "bruno_retrieval_job_documents",
    "Documents of jobs accounted for, by kind and outcome (done, failed).",
    ["kind", "outcome"],
)
JOB_CHUNKS = Counter(
    "bruno_retrieval_job_chunks_written", "Chunks jobs have written, by kind.", ["kind"]
)
JOB_DOCUMENT_RETRIES = Counter(
    "bruno_retrieval_job_document_retries",
    "Documents of jobs tried again after a transient failure (embedding late or unavailable, "
    "a commit race), by kind.",
    ["kind"],
)
