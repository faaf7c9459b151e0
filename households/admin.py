from django.contrib import admin

from .models import Area, Household


@admin.register(Area)
class AreaAdmin(admin.ModelAdmin):
    list_display = ["name", "name_en", "code", "level", "is_poor_village"]
    list_filter = ["level", "is_poor_village"]
    search_fields = ["name", "name_en", "code"]
    raw_id_fields = ["parent"]


@admin.register(Household)
class HouseholdAdmin(admin.ModelAdmin):
    """Changes belong in the register pages (which write the audit log);
    the admin only looks."""

    list_display = ["public_id", "village", "size"]
    search_fields = ["public_id"]
    raw_id_fields = ["village", "created_by"]
    readonly_fields = [f.name for f in Household._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
