"""owner quotas

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('container_owner_quota',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.String(length=64), nullable=False),
    sa.Column('total_size', sa.BigInteger(), nullable=True),
    sa.Column('versions', sa.Integer(), nullable=True),
    sa.Column('blob_size', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_container_owner_quota')),
    sa.UniqueConstraint('owner_id', name=op.f('uq_container_owner_quota_owner_id'))
    )


def downgrade() -> None:
    op.drop_table('container_owner_quota')
