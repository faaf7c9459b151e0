from cooperatives.access import is_manager


def roles(request):
    """The navigation shows each person the pages of their roles."""
    user = request.user
    if not user.is_authenticated:
        return {}
    return {
        "is_secretary": user.is_secretary,
        "is_bureau_staff": user.is_bureau_staff,
        "is_donor": user.donor_profile is not None,
        "is_coop_manager": is_manager(user),
    }
