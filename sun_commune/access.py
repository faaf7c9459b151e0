"""Who may open which page.

Pages for a role refuse users without it (403). Objects are looked up
through the helpers in each app's ``access`` module, which filter by the
user's areas, so that an object outside them answers 404 — never a hint
that it exists.
"""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied


def _role_required(test):
    def decorator(view):
        @login_required
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not test(request.user):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


secretary_required = _role_required(lambda user: user.is_secretary)
staff_required = _role_required(lambda user: user.is_bureau_staff)
donor_required = _role_required(lambda user: user.donor_profile is not None)
