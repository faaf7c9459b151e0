"""Who is asking, in one query.

Every page a logged-in person opens needs their user row, their active role
grants with the areas they cover (the navigation and every access check),
their donor profile (if any) and whether they manage a cooperative. Loaded
one by one that is four queries before the page does anything; here it is
one, and the user object carries the answers (handed over through
``User.set_loaded``: ``grants``, ``donor_profile`` and the cooperative
manager flag then answer without a query; each grant's area has
``loaded_children``)."""

from functools import cache

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db import connection

from cooperatives.models import CooperativeManager
from donations.models import Donor
from households.models import Area
from sun_commune.models import RoleGrant
from sun_commune.prepared import prepared

# The areas directly under each of the user's areas come along too (the
# lists' "narrow to" links), up to CHILDREN_MAX, with the fields they show.
CHILDREN_MAX = 200
CHILD_FIELDS = ["id", "code", "name", "name_en"]


@cache
def _sql() -> str:
    user = get_user_model()
    columns = ", ".join(f'u."{f.column}"' for f in user._meta.concrete_fields)
    return f"""
        SELECT {columns},
            (SELECT coalesce(json_agg(json_build_object(
                        'grant', row_to_json(g),
                        'area', row_to_json(a),
                        'children', (SELECT coalesce(json_agg(json_build_object(
                                                'id', c.id, 'code', c.code, 'name', c.name, 'name_en', c.name_en)
                                            ORDER BY c.code), '[]')
                                       FROM (SELECT id, code, name, name_en FROM {Area._meta.db_table}
                                              WHERE parent_id = a.id ORDER BY code LIMIT {CHILDREN_MAX}) c)
                    ) ORDER BY g.id), '[]')
               FROM {RoleGrant._meta.db_table} g JOIN {Area._meta.db_table} a ON a.id = g.area_id
              WHERE g.user_id = u.id AND g.active),
            (SELECT row_to_json(d) FROM {Donor._meta.db_table} d WHERE d.user_id = u.id ORDER BY d.id LIMIT 1),
            EXISTS (SELECT 1 FROM {CooperativeManager._meta.db_table} m WHERE m.user_id = u.id AND m.active)
          FROM {user._meta.db_table} u
         WHERE u.id = %s
    """


def _instance(model, data: dict):
    """A model instance from a row as PostgreSQL's row_to_json wrote it,
    each value converted as if it had come from the column itself."""
    values = []
    for field in model._meta.concrete_fields:
        value = data[field.column]
        if value is not None:
            value = field.from_db_value(value, None, connection) if hasattr(field, "from_db_value") else value
            value = field.to_python(value)
        values.append(value)
    return model.from_db(connection.alias, [f.attname for f in model._meta.concrete_fields], values)


def load_user(user_id):
    """The user with ``grants``, ``donor_profile`` and the cooperative
    manager flag already in place; None if there is no such user."""
    user_model = get_user_model()
    try:
        user_id = user_model._meta.pk.to_python(user_id)
    except Exception:
        return None
    # Prepared once per connection: planning it took longer than running it
    # (0.2 ms against 0.07 ms), on every request of a logged-in user.
    with prepared(), connection.cursor() as cursor:
        cursor.execute(_sql(), [user_id])
        row = cursor.fetchone()
    if row is None:
        return None
    fields = user_model._meta.concrete_fields
    user = user_model.from_db(connection.alias, [f.attname for f in fields], list(row[: len(fields)]))
    grants_data, donor_data, coop_manager = row[len(fields) :]
    grants = []
    for item in grants_data:
        grant = _instance(RoleGrant, item["grant"])
        grant.area = _instance(Area, item["area"])
        grant.area.loaded_children = [
            Area.from_db(connection.alias, CHILD_FIELDS, [child[f] for f in CHILD_FIELDS]) for child in item["children"]
        ]
        grant.user = user
        grants.append(grant)
    donor = _instance(Donor, donor_data) if donor_data else None
    if donor is not None:
        donor.user = user
    user.set_loaded(grants=grants, donor=donor, coop_manager=bool(coop_manager))
    return user


class RoleAwareBackend(ModelBackend):
    """Django's model backend (passwords, permissions), with the user of each
    request loaded by :func:`load_user`."""

    def get_user(self, user_id):
        user = load_user(user_id)
        return user if user is not None and self.user_can_authenticate(user) else None
