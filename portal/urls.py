"""Every URL of the site: the top app routes to each app."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from sun_commune import views as base_views
from sun_commune.forms import AdminLoginForm, LoginForm, QueuedPasswordResetForm

from . import views

admin.site.login_form = AdminLoginForm

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", base_views.healthz, name="healthz"),
    path("bench/reference/", views.bench_reference, name="bench-reference"),
    path("accounts/login/", auth_views.LoginView.as_view(authentication_form=LoginForm), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password-reset/",
        auth_views.PasswordResetView.as_view(form_class=QueuedPasswordResetForm),
        name="password_reset",
    ),
    path("accounts/password-reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("accounts/reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("households/villages/<str:code>/", views.village_public, name="village-public"),
    path("households/", include("households.urls")),
    path("cooperatives/", include("cooperatives.urls")),
    path("", include("donations.urls")),
    path(settings.ADMIN_URL, admin.site.urls),
]
