from django.contrib import admin

from .models import (
    Cooperative,
    CooperativeManager,
    Delivery,
    Distribution,
    DistributionLine,
    LeadingEnterprise,
    Loan,
    LoanInstallment,
    Member,
    PurchaseContract,
    ShareEvent,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """State changes go through the services (locks, audit log, income
    records); the admin is for looking."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields] + [f.name for f in self.model._meta.many_to_many]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LeadingEnterprise)
class LeadingEnterpriseAdmin(ReadOnlyAdmin):
    list_display = ["name", "general_manager"]
    search_fields = ["name"]


@admin.register(Cooperative)
class CooperativeAdmin(ReadOnlyAdmin):
    list_display = ["name", "kind", "area"]
    list_filter = ["kind"]
    search_fields = ["name"]


@admin.register(CooperativeManager)
class CooperativeManagerAdmin(ReadOnlyAdmin):
    list_display = ["user", "cooperative", "active", "granted_at"]


@admin.register(Member)
class MemberAdmin(ReadOnlyAdmin):
    list_display = ["cooperative", "number", "kind", "joined_on", "exited_on"]
    list_filter = ["kind"]
    show_full_result_count = False


@admin.register(ShareEvent)
class ShareEventAdmin(ReadOnlyAdmin):
    list_display = ["member", "kind", "holding", "quantity", "occurred_on"]
    list_filter = ["kind", "holding"]
    show_full_result_count = False


@admin.register(Loan)
class LoanAdmin(ReadOnlyAdmin):
    list_display = ["cooperative", "member", "lender", "principal", "status"]
    list_filter = ["status"]


@admin.register(LoanInstallment)
class LoanInstallmentAdmin(ReadOnlyAdmin):
    list_display = ["loan", "number", "due_on", "paid_on", "reminded_at", "flagged_at"]
    show_full_result_count = False


@admin.register(PurchaseContract)
class PurchaseContractAdmin(ReadOnlyAdmin):
    list_display = ["cooperative", "member", "product", "season", "agreed_price", "guaranteed_price"]


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["cooperative", "member", "product", "delivered_on", "quantity", "price_paid"]
    show_full_result_count = False


@admin.register(Distribution)
class DistributionAdmin(ReadOnlyAdmin):
    list_display = ["cooperative", "year", "surplus", "status"]
    list_filter = ["status"]


@admin.register(DistributionLine)
class DistributionLineAdmin(ReadOnlyAdmin):
    list_display = ["distribution", "member", "total", "paid_at"]
    show_full_result_count = False
