"""Lifecycle jobs: workspaces whose deletion grace ended are deleted and verified; retention
is applied nightly."""

from __future__ import annotations

import structlog

from parley.kit.db import all_tenant_ids, tenants_due_for_deletion
from parley.kit.jobs import REGISTRY, JobContext
from parley.knowledge.storage import storage_for
from parley.lifecycle import exports, retention, workspace_data

log = structlog.get_logger(__name__)

DELETE_DUE_JOB = "lifecycle.delete_due_workspaces"
RETENTION_JOB = "lifecycle.apply_retention"
EXPORT_JOB = exports.EXPORT_JOB  # registered in exports.py


class LeftoverData(RuntimeError):
    """A deleted workspace still has rows or objects: the job fails and retries."""


@REGISTRY.job(DELETE_DUE_JOB, max_attempts=5, concurrency_limit=1)
async def delete_due_workspaces(ctx: JobContext) -> None:
    storage = storage_for(ctx.runtime)
    for tenant_id in await tenants_due_for_deletion(ctx.db):
        removed = await workspace_data.delete_workspace(ctx.db, storage, tenant_id)
        left = await workspace_data.verify_deleted(ctx.db, storage, tenant_id)
        if not left.clean:
            log.error(
                "workspace.deletion_incomplete",
                tenant_id=str(tenant_id),
                rows=left.rows,
                objects=left.objects,
            )
            raise LeftoverData(f"workspace {tenant_id}: {left.rows}, {left.objects} objects")
        log.info(
            "workspace.deletion_verified",
            tenant_id=str(tenant_id),
            tables_checked=left.tables_checked,
            rows_removed=sum(v for k, v in removed.items() if k != "storage_objects"),
            objects_removed=removed.get("storage_objects", 0),
        )


@REGISTRY.job(RETENTION_JOB, max_attempts=3, concurrency_limit=1)
async def apply_retention(ctx: JobContext) -> None:
    storage = storage_for(ctx.runtime)
    for tenant_id in await all_tenant_ids(ctx.db):
        policy = await retention.policy_for(ctx.db, ctx.runtime.settings, tenant_id)
        removed = await retention.purge_workspace(ctx.db, storage, tenant_id, policy)
        if any(removed.values()):
            log.info("retention.purged", tenant_id=str(tenant_id), **removed)


REGISTRY.every(DELETE_DUE_JOB, "*/15 * * * *")
REGISTRY.every(RETENTION_JOB, "41 2 * * *")
