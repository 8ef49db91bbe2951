"""rate-limit counters shared by every process; metric series: cluster-wide running totals of /metrics counters and histograms

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 23:10:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rate_limit_counter',
    sa.Column('bucket', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('window_start', sa.BigInteger(), nullable=False),
    sa.Column('window_end', sa.BigInteger(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'key', 'window_start', name=op.f('pk_rate_limit_counter'))
    )
    with op.batch_alter_table('rate_limit_counter', schema=None) as batch_op:
        batch_op.create_index('ix_rate_limit_counter_window_end', ['window_end'], unique=False)

    op.create_table('metric_series',
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('labels', sa.String(length=500), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('name', 'labels', name=op.f('pk_metric_series'))
    )


def downgrade() -> None:
    op.drop_table('metric_series')
    with op.batch_alter_table('rate_limit_counter', schema=None) as batch_op:
        batch_op.drop_index('ix_rate_limit_counter_window_end')
    op.drop_table('rate_limit_counter')
