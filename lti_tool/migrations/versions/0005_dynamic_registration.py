"""dynamic registration: how a platform was registered, first-deployment flag, registration details

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 22:09:50.834609
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('platform', schema=None) as batch_op:
        batch_op.add_column(sa.Column('registered_via', sa.String(length=20), server_default='manual', nullable=False))
        batch_op.add_column(sa.Column('accept_first_deployment', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('registration_info', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('platform', schema=None) as batch_op:
        batch_op.drop_column('registration_info')
        batch_op.drop_column('accept_first_deployment')
        batch_op.drop_column('registered_via')
