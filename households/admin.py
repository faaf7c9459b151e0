from django.contrib import admin

from .models import Area, Household, HouseholdChange, ImportJob, VillageFigures


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


class ReadOnlyAdmin(admin.ModelAdmin):
    """History, imports and figures are written by the register's own code;
    the admin only looks (and never shows a stored value of a history row)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(HouseholdChange)
class HouseholdChangeAdmin(ReadOnlyAdmin):
    list_display = ["household", "kind", "field", "changed_by", "changed_at"]
    list_filter = ["kind"]
    fields = ["household", "kind", "member_id", "field", "changed_by", "changed_at", "audit_entry"]
    raw_id_fields = ["household", "changed_by", "audit_entry"]


@admin.register(ImportJob)
class ImportJobAdmin(ReadOnlyAdmin):
    list_display = ["pk", "filename", "area", "status", "created_count", "skipped_count", "error_count", "created_at"]
    list_filter = ["status"]
    exclude = ["content"]
    raw_id_fields = ["area", "created_by"]


@admin.register(VillageFigures)
class VillageFiguresAdmin(ReadOnlyAdmin):
    list_display = ["village", "households", "persons", "computed_at"]
    raw_id_fields = ["village"]
