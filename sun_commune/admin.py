from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from .models import AuditEntry, RoleGrant, User


class RoleGrantInline(admin.TabularInline):
    model = RoleGrant
    extra = 0
    autocomplete_fields = ["area"]


@admin.register(User)
class SunUserAdmin(UserAdmin):
    inlines = [RoleGrantInline]
    fieldsets = UserAdmin.fieldsets + ((None, {"fields": ["language"]}),)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read only: audit entries cannot be edited or deleted, here or anywhere."""

    list_display = ["at", "actor", "action", "content_type", "object_id", "ip_address"]
    list_filter = ["action", "content_type"]
    search_fields = ["object_id", "actor__username"]
    date_hierarchy = "at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
