def roles(request):
    """The navigation shows each person the pages of their roles."""
    user = request.user
    if not user.is_authenticated:
        return {}
    return {
        "is_secretary": user.is_secretary,
        "is_bureau_staff": user.is_bureau_staff,
        "is_donor": user.donor_profile is not None,
        "is_coop_manager": _is_coop_manager(user),
    }


def _is_coop_manager(user) -> bool:
    from cooperatives.access import is_manager

    return is_manager(user)
