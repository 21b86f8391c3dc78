"""initial package model

Revision ID: 0001
Revises: 
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = ('forge_container',)
depends_on = None


def upgrade() -> None:
    op.create_table('container_blob_upload',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('owner_id', sa.String(length=64), nullable=False),
    sa.Column('image', sa.String(length=255), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.Column('bytes_received', sa.BigInteger(), nullable=False),
    sa.Column('digest_algorithm', sa.String(length=16), nullable=False),
    sa.Column('hash_state', sa.LargeBinary(), nullable=True),
    sa.Column('hash_state_format', sa.String(length=64), nullable=True),
    sa.Column('storage_state', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_container_blob_upload'))
    )
    with op.batch_alter_table('container_blob_upload', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_container_blob_upload_updated_at'), ['updated_at'], unique=False)

    op.create_table('container_cleanup_rule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('keep_count', sa.Integer(), nullable=False),
    sa.Column('keep_pattern', sa.Text(), nullable=False),
    sa.Column('remove_pattern', sa.Text(), nullable=False),
    sa.Column('remove_days', sa.Integer(), nullable=False),
    sa.Column('remove_untagged', sa.Boolean(), nullable=False),
    sa.Column('match_full_name', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_container_cleanup_rule')),
    sa.UniqueConstraint('owner_id', 'type', name=op.f('uq_container_cleanup_rule_owner_id_type'))
    )
    op.create_table('container_package',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.String(length=64), nullable=False),
    sa.Column('owner_name', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('repository_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_container_package')),
    sa.UniqueConstraint('owner_id', 'type', 'name', name=op.f('uq_container_package_owner_id_type_name'))
    )
    with op.batch_alter_table('container_package', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_container_package_repository_id'), ['repository_id'], unique=False)

    op.create_table('container_package_blob',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=135), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_container_package_blob')),
    sa.UniqueConstraint('digest', name=op.f('uq_container_package_blob_digest'))
    )
    with op.batch_alter_table('container_package_blob', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_container_package_blob_created_at'), ['created_at'], unique=False)

    op.create_table('container_package_property',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ref_type', sa.String(length=16), nullable=False),
    sa.Column('ref_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_container_package_property'))
    )
    with op.batch_alter_table('container_package_property', schema=None) as batch_op:
        batch_op.create_index('ix_container_package_property_ref', ['ref_type', 'ref_id', 'name'], unique=False)

    op.create_table('container_blob_link',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('package_id', sa.Integer(), nullable=False),
    sa.Column('blob_id', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['blob_id'], ['container_package_blob.id'], name=op.f('fk_container_blob_link_blob_id_container_package_blob')),
    sa.ForeignKeyConstraint(['package_id'], ['container_package.id'], name=op.f('fk_container_blob_link_package_id_container_package'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_container_blob_link')),
    sa.UniqueConstraint('package_id', 'blob_id', name=op.f('uq_container_blob_link_package_id_blob_id'))
    )
    with op.batch_alter_table('container_blob_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_container_blob_link_blob_id'), ['blob_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_container_blob_link_created_at'), ['created_at'], unique=False)

    op.create_table('container_package_version',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('package_id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=135), nullable=False),
    sa.Column('media_type', sa.String(length=255), nullable=False),
    sa.Column('artifact_type', sa.String(length=255), nullable=True),
    sa.Column('subject_digest', sa.String(length=135), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('metadata_json', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['package_id'], ['container_package.id'], name=op.f('fk_container_package_version_package_id_container_package'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_container_package_version')),
    sa.UniqueConstraint('package_id', 'digest', name=op.f('uq_container_package_version_package_id_digest'))
    )
    with op.batch_alter_table('container_package_version', schema=None) as batch_op:
        batch_op.create_index('ix_container_package_version_created', ['package_id', 'created_at'], unique=False)
        batch_op.create_index('ix_container_package_version_subject', ['package_id', 'subject_digest'], unique=False)

    op.create_table('container_package_file',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('blob_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('media_type', sa.String(length=255), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['blob_id'], ['container_package_blob.id'], name=op.f('fk_container_package_file_blob_id_container_package_blob')),
    sa.ForeignKeyConstraint(['version_id'], ['container_package_version.id'], name=op.f('fk_container_package_file_version_id_container_package_version'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_container_package_file')),
    sa.UniqueConstraint('version_id', 'position', name=op.f('uq_container_package_file_version_id_position'))
    )
    with op.batch_alter_table('container_package_file', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_container_package_file_blob_id'), ['blob_id'], unique=False)

    op.create_table('container_package_tag',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('package_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['package_id'], ['container_package.id'], name=op.f('fk_container_package_tag_package_id_container_package'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['container_package_version.id'], name=op.f('fk_container_package_tag_version_id_container_package_version'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_container_package_tag')),
    sa.UniqueConstraint('package_id', 'name', name=op.f('uq_container_package_tag_package_id_name'))
    )
    with op.batch_alter_table('container_package_tag', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_container_package_tag_version_id'), ['version_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('container_package_tag', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_container_package_tag_version_id'))

    op.drop_table('container_package_tag')
    with op.batch_alter_table('container_package_file', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_container_package_file_blob_id'))

    op.drop_table('container_package_file')
    with op.batch_alter_table('container_package_version', schema=None) as batch_op:
        batch_op.drop_index('ix_container_package_version_subject')
        batch_op.drop_index('ix_container_package_version_created')

    op.drop_table('container_package_version')
    with op.batch_alter_table('container_blob_link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_container_blob_link_created_at'))
        batch_op.drop_index(batch_op.f('ix_container_blob_link_blob_id'))

    op.drop_table('container_blob_link')
    with op.batch_alter_table('container_package_property', schema=None) as batch_op:
        batch_op.drop_index('ix_container_package_property_ref')

    op.drop_table('container_package_property')
    with op.batch_alter_table('container_package_blob', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_container_package_blob_created_at'))

    op.drop_table('container_package_blob')
    with op.batch_alter_table('container_package', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_container_package_repository_id'))

    op.drop_table('container_package')
    op.drop_table('container_cleanup_rule')
    with op.batch_alter_table('container_blob_upload', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_container_blob_upload_updated_at'))

    op.drop_table('container_blob_upload')
