from django.contrib import admin

from .models import Donor, Need, Pairing, PairingInstallment, PairingUpdate, Pledge


class ReadOnlyAdmin(admin.ModelAdmin):
    """State changes go through the services (audit log, locks, mail); the
    admin is for looking."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Donor)
class DonorAdmin(ReadOnlyAdmin):
    list_display = ["name", "kind", "show_name", "created_at"]
    search_fields = ["name", "user__username"]


@admin.register(Need)
class NeedAdmin(ReadOnlyAdmin):
    list_display = ["title", "village", "kind", "status", "deadline"]
    list_filter = ["status", "kind", "category"]
    search_fields = ["title"]
    show_full_result_count = False


@admin.register(Pledge)
class PledgeAdmin(ReadOnlyAdmin):
    list_display = ["pk", "need", "donor", "status", "created_at"]
    list_filter = ["status"]
    show_full_result_count = False


@admin.register(Pairing)
class PairingAdmin(ReadOnlyAdmin):
    list_display = ["pk", "donor", "village", "household", "commitment", "status", "start_date", "end_date"]
    list_filter = ["status", "commitment"]
    show_full_result_count = False


@admin.register(PairingInstallment)
class PairingInstallmentAdmin(ReadOnlyAdmin):
    list_display = ["pk", "pairing", "period", "need", "pledge", "created_at"]
    show_full_result_count = False


@admin.register(PairingUpdate)
class PairingUpdateAdmin(ReadOnlyAdmin):
    list_display = ["pk", "pairing", "created_by", "created_at"]
    show_full_result_count = False
