from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from .models import AuditEntry, RoleGrant, User
from .services import grant_role, withdraw_role


class RoleGrantInline(admin.TabularInline):
    model = RoleGrant
    extra = 0
    autocomplete_fields = ["area"]


@admin.register(User)
class SunUserAdmin(UserAdmin):
    inlines = [RoleGrantInline]
    fieldsets = UserAdmin.fieldsets + ((None, {"fields": ["language"]}),)

    def save_formset(self, request, form, formset, change):
        """Role grants go through the services, so each leaves an audit entry;
        a grant is withdrawn (kept, inactive), never deleted."""
        if formset.model is not RoleGrant:
            return super().save_formset(request, form, formset, change)
        for inline_form in formset.forms:
            if not inline_form.has_changed() and not formset._should_delete_form(inline_form):
                continue
            data = inline_form.cleaned_data
            grant = inline_form.instance
            if grant.pk and (formset._should_delete_form(inline_form) or not data.get("active", True)):
                withdraw_role(by=request.user, grant_id=grant.pk)
            elif data.get("area") and data.get("role"):
                grant_role(by=request.user, user=form.instance, role=data["role"], area=data["area"])


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
