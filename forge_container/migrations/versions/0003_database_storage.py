"""database storage

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('container_storage_file',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=255), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('modified_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_container_storage_file')),
    sa.UniqueConstraint('path', name=op.f('uq_container_storage_file_path')),
    sqlite_autoincrement=True
    )
    op.create_table('container_storage_chunk',
    sa.Column('file_id', sa.Integer(), nullable=False),
    sa.Column('start', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['file_id'], ['container_storage_file.id'], name=op.f('fk_container_storage_chunk_file_id_container_storage_file'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('file_id', 'start', name=op.f('pk_container_storage_chunk'))
    )


def downgrade() -> None:
    op.drop_table('container_storage_chunk')
    op.drop_table('container_storage_file')
