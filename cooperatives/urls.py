from django.urls import path

from . import views

app_name = "cooperatives"

urlpatterns = [
    # Public.
    path("", views.cooperative_list, name="cooperative-list"),
    path("<int:pk>/", views.cooperative_detail, name="cooperative-detail"),
    # The keepers: managers of a cooperative and bureau staff over its area.
    path("manage/", views.my_cooperatives, name="my-cooperatives"),
    path("manage/new/", views.cooperative_create, name="cooperative-create"),
    path("manage/<int:pk>/", views.cooperative_manage, name="cooperative-manage"),
    path("manage/<int:pk>/enterprises/new/", views.enterprise_add, name="enterprise-add"),
    path("manage/<int:pk>/managers/", views.manager_grant, name="manager-grant"),
    path("manage/<int:pk>/managers/<int:grant>/withdraw/", views.manager_withdraw, name="manager-withdraw"),
    path("manage/<int:pk>/rules/", views.rules_edit, name="rules-edit"),
    path("manage/<int:pk>/members/", views.member_list, name="member-list"),
    path("manage/<int:pk>/members/new/", views.member_create, name="member-create"),
    path("manage/<int:pk>/members/<int:member>/shares/", views.shares_increase, name="shares-increase"),
    path("manage/<int:pk>/members/<int:member>/transfer/", views.shares_transfer, name="shares-transfer"),
    path("manage/<int:pk>/members/<int:member>/exit/", views.member_exit, name="member-exit"),
    path("manage/<int:pk>/members/<int:member>/loans/new/", views.loan_create, name="loan-create"),
    path("manage/<int:pk>/members/<int:member>/contracts/new/", views.contract_create, name="contract-create"),
    path("manage/<int:pk>/loans/<int:loan>/", views.loan_detail, name="loan-detail"),
    path("manage/<int:pk>/installments/<int:installment>/paid/", views.installment_paid, name="installment-paid"),
    path("manage/<int:pk>/contracts/<int:contract>/deliveries/new/", views.delivery_create, name="delivery-create"),
    path("manage/<int:pk>/deliveries/", views.delivery_list, name="delivery-list"),
    path("manage/<int:pk>/distributions/new/", views.distribution_compute, name="distribution-compute"),
    path("manage/<int:pk>/distributions/<int:dist>/", views.distribution_detail, name="distribution-detail"),
    path("manage/<int:pk>/distributions/<int:dist>/approve/", views.distribution_approve, name="distribution-approve"),
    path("manage/<int:pk>/distributions/<int:dist>/pay/", views.distribution_pay_all, name="distribution-pay-all"),
    path("manage/<int:pk>/lines/<int:line>/pay/", views.line_pay, name="line-pay"),
    path("manage/<int:pk>/report/", views.cooperative_report, name="cooperative-report"),
    path("bureau/report/", views.area_report, name="area-report"),
    # Members' statements.
    path("statements/", views.statement_list, name="statement-list"),
    path("statements/<int:member>/", views.member_statement, name="member-statement"),
    # The household's side of joining: its village's first secretary.
    path("requests/", views.membership_requests, name="membership-requests"),
    path("requests/<int:member>/confirm/", views.membership_confirm, name="membership-confirm"),
    path("requests/<int:member>/decline/", views.membership_decline, name="membership-decline"),
]
